"""The national-scale benchmark (``tyokyky bench``); see BENCHMARKS.md."""
