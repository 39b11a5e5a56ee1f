"""rl-adaloss: does a loss-driven step size free deep RL from tuning the learning rate?"""

__version__ = "0.1.0"
