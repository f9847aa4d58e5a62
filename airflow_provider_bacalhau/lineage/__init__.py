"""Lineage: what a Bacalhau task read and wrote, told to OpenLineage and to Airflow's Assets.

Above ``spec``, below the data plane and the operators (it imports neither):

- :mod:`.names`: plain Python; inputs, published results and local paths as dataset names
  (OpenLineage namespace and name, the amazon provider's naming for S3) and Asset URIs, and the
  run facet's fields of a finished job;
- :mod:`.assets`: Airflow's hook-lineage collector (as ``S3Hook`` reports) and the asset events
  of a task's outlets (``Asset`` and ``AssetAlias``);
- :mod:`.openlineage`: the OpenLineage facets; imported only from the operators'
  ``get_openlineage_facets_on_*`` methods, so nothing of OpenLineage loads without them.
"""
