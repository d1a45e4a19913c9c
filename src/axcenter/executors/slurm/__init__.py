"""The Slurm engine: axcenter places and charges, Slurm runs the jobs on its nodes
(docs/engines.md). ``cli`` holds every Slurm command and parse, for one version at a time;
``batch`` builds a run's sbatch options and batch script; ``engine`` the contract."""

from axcenter.executors.slurm.engine import SlurmEngine, SlurmOptions, slurm_engine

__all__ = ["SlurmEngine", "SlurmOptions", "slurm_engine"]
