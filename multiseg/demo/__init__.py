"""The demo world: generated datasets in the real datasets' on-disk formats, so everything runs anywhere.

Stage 1 of the data flow (see docs/architecture.md). It *writes* datasets; :mod:`multiseg.data` reads
them exactly as it reads the real ones.

* :mod:`.builder` (world classes, shapes, camera), :mod:`.layout` (the street), :mod:`.actors`
  (vehicles, people, poles), :mod:`.signs` (the 43 GTSDB sign sprites) and :mod:`.scene` (one frame's
  scene) describe a street; :mod:`.render` turns a scene into pixels and labels through a camera;
* :mod:`.writers` write frames as Cityscapes, GTSDB and Vistas files, :mod:`.world` a whole world
  (``multiseg demo-data``) and :mod:`.cache` finds or generates the cached one commands default to;
* :mod:`.crops` writes a classification set of crops for encoder pretraining, and :mod:`.synthetic`
  tiny random-pixel datasets (or broken ones) for tests and benchmarks.
"""
