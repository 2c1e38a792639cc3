"""Population training: many models of one cell at once, each with its own data, length,
learning rate, initialisation and clipping; optimisers in torch's and Keras 2's conventions;
protocols keras-split / stratified / all; resumable runs saved per group (CSV or HDF5).

    from landscape.train import TrainSpec, Member, train_population, run_groups
    spec = TrainSpec.of(cell="lstm", cell_options=(("gate", "hard_sigmoid"),), task="latch", n=10000)
    members = [Member(T=T, seed=r, data_seed=T, group=f"lstm-T{T}") for T in (10, 50) for r in range(5)]
    result = train_population(spec, members)          # metrics (E + 1, P), params (E + 1, P, ...)
    rows = run_groups([(spec, members)], out="runs.csv")   # the same, saved and resumable
"""
from .splits import PROTOCOLS
from .optim import OPTIMIZERS, PopulationOptimizer
from .population import (INITS, METRICS, Member, TrainResult, TrainSpec, check_population, spec_key,
                         train_population, unroll_outputs)
from .results import ResultStore, run_groups

__all__ = ["INITS", "METRICS", "OPTIMIZERS", "PROTOCOLS", "Member", "PopulationOptimizer",
           "ResultStore", "TrainResult", "TrainSpec", "check_population", "run_groups", "spec_key",
           "train_population", "unroll_outputs"]
