"""Running a network fast and elsewhere: ONNX export and Runtime sessions, int8, benchmarks, prediction."""
