"""Moving data in and out: file imports and exports, whole-database dumps, and the jobs
that run long transfers in the background."""
