"""SB3 integration: PPO whose actor and critic each have their own loss-fed optimizer."""

from rl_adaloss.ppo.algorithm import AdaLossPPO, TrainingDiverged
from rl_adaloss.ppo.policy import (
                                   OptimizerPair,
                                   SeparateOptimizersCnnPolicy,
                                   SeparateOptimizersMultiInputPolicy,
                                   SeparateOptimizersPolicy,
)

__all__ = ["AdaLossPPO", "OptimizerPair", "SeparateOptimizersCnnPolicy", "SeparateOptimizersMultiInputPolicy",
           "SeparateOptimizersPolicy", "TrainingDiverged"]
