"""Memory estimator and parallel-strategy recommender (``imts plan``), and the configs it generates."""

from imts.train.plan.service import make_plan, resolve_arch

__all__ = ["make_plan", "resolve_arch"]
