"""The thin Dagster layer over the core: assets, asset checks, resources, partitions, sensor,
schedule and Definitions. Each asset is a few lines calling ``pipelines`` or ``reports``."""
