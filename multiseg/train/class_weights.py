"""The ENet class weights of the heads named in ``class_weighted_heads``, counted from their training targets.

The pass reads every training sample once, before the first step, through the datasets' skip path: with
``skip_bad`` a corrupt file is warned about, left out of the counts and reported with the run's other
skipped files, instead of stopping the run that ``--skip-bad`` asked to keep going.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from multiseg.data.base import SegDataset
from multiseg.data.pipeline import SkippedFiles
from multiseg.errors import MultisegError
from multiseg.train.step import enet_class_weights


def class_weights(
    datasets: list[SegDataset], heads: list[str], skipped: SkippedFiles, show: bool = True
) -> dict[str, torch.Tensor]:
    """ENet weights per head in ``heads`` from the pixel counts of its untransformed training targets.

    Skipped files are added to ``skipped`` only when ``show`` (rank 0), so a DDP run, where every rank
    makes the same pass, counts each skip once.
    """
    names = [ds.name for ds in datasets]
    unknown = set(heads) - set(names)
    if unknown:
        raise MultisegError(f"config key 'class_weighted_heads': {sorted(unknown)} are not in datasets")
    weights = {}
    for ds in datasets:
        if ds.name not in heads:
            continue
        counts = torch.zeros(ds.num_classes, dtype=torch.float64)
        for i in tqdm(range(len(ds)), desc=f"class frequencies ({ds.name})", disable=not show):
            sample = ds.load_or_skip(i)
            if sample is None:
                if show:
                    skipped.counts[str(ds.records[i].image)] += 1
                continue
            label = torch.from_numpy(ds.finish(sample).label).long().flatten()
            counts += torch.bincount(label[label < ds.num_classes], minlength=ds.num_classes).double()
        weights[ds.name] = enet_class_weights(counts)
    return weights
