"""Dask clusters for a project on the site's engines (a layer above the hub, below provisioning).

SLURM: a dask-jobqueue `SLURMCluster` whose workers run as the project's account in the workspace's sandbox, sized
by the project's compute limits, with TLS certificates of its own (clusters/slurm.py); its defaults (slurm.yaml,
clusters/settings.py); a one-machine SLURM for development, the tests and the benchmarks (clusters/slurm_conf.py
writes it, clusters/dev_slurm.py runs it); and what SLURM says about a worker job that ended (clusters/jobs.py).
Kubernetes: the Dask operator's DaskCluster for a project, hardened like a workspace pod, and the project
namespace's NetworkPolicies and Role for it (clusters/kubernetes.py, clusters/kubernetes_network.py,
kubernetes.yaml).
"""
