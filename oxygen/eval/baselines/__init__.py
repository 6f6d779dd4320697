"""Non-generative baselines, each a `oxygen.eval.recommender.Recommender`: `pop`, `markov`, `sasrec`.

    from oxygen.eval.baselines import PopRecommender, MarkovRecommender, SASRecRecommender
"""

from oxygen.eval.baselines.markov import MarkovRecommender
from oxygen.eval.baselines.pop import PopRecommender
from oxygen.eval.baselines.sasrec import SASRecRecommender

__all__ = ["MarkovRecommender", "PopRecommender", "SASRecRecommender"]
