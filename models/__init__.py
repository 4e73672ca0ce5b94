"""Subject models for energymeter (``energymeter.models``).

Energy-regularised networks trained with ``L = L_CE + lambda * E(theta, x)``, the activation energy
E itself, and the datasets they are trained on. This package imports torch.
"""

from .datasets import DATASETS, Dataset, DatasetError, load_dataset
from .activation_energy import ACTIVATION_TYPES, KINDS, ActivationEnergy
from .kwta import KWinnersTakeAll
from .rescaling import activation_layers, rescale
from .scale_free import SCALE_FREE_KINDS, activation_energies
from .training import EpochStats, Evaluation, TrainResult, evaluate, finish, train, train_epochs
from .zoo import MODELS, build

__all__ = ["ACTIVATION_TYPES", "DATASETS", "KINDS", "MODELS", "SCALE_FREE_KINDS", "ActivationEnergy", "Dataset",
           "DatasetError", "EpochStats", "Evaluation", "KWinnersTakeAll", "TrainResult", "activation_energies",
           "activation_layers", "build", "evaluate", "finish", "load_dataset", "rescale", "train", "train_epochs"]
