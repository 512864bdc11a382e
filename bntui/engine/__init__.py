"""The headless NumPy engine of bntui: layers, network, loss, optimizers, gradient checks,
datasets, the trace of a pass and the training session.

It imports numpy only (scikit-learn inside dataset loaders, torch inside the autograd
check, both lazily) and never a UI library, so the command line, the tests and the app
all drive the same code.
"""

from bntui.engine.activations import ACTIVATION_NAMES, Activation, make_activation
from bntui.engine.arch import ArchSpec, BlockSpec, parse_arch
from bntui.engine.batchnorm import BatchNorm
from bntui.engine.config import PRESETS, RunConfig, preset
from bntui.engine.datasets import DATASET_NAMES, Dataset, load_dataset
from bntui.engine.dense import Dense
from bntui.engine.errors import BntuiError
from bntui.engine.export import export_torch, load_torch, to_torch
from bntui.engine.gradcheck import GradcheckReport, rel_error
from bntui.engine.gradcheck import gradcheck as check_gradients
from bntui.engine.groupnorm import GroupNorm
from bntui.engine.layernorm import LayerNorm
from bntui.engine.loss import SoftmaxCrossEntropy
from bntui.engine.network import Block, BNOptions, Network
from bntui.engine.optimizers import OPTIMIZERS, Optimizer, make_optimizer
from bntui.engine.persist import load_session, save_session
from bntui.engine.rmsnorm import RMSNorm
from bntui.engine.session import Session
from bntui.engine.trace import Trace, TraceStep, record_trace

__all__ = [
    "ACTIVATION_NAMES",
    "DATASET_NAMES",
    "OPTIMIZERS",
    "PRESETS",
    "Activation",
    "ArchSpec",
    "BNOptions",
    "BatchNorm",
    "Block",
    "BlockSpec",
    "BntuiError",
    "Dataset",
    "Dense",
    "GradcheckReport",
    "GroupNorm",
    "LayerNorm",
    "Network",
    "Optimizer",
    "RMSNorm",
    "RunConfig",
    "Session",
    "SoftmaxCrossEntropy",
    "Trace",
    "TraceStep",
    "check_gradients",
    "export_torch",
    "load_dataset",
    "load_session",
    "load_torch",
    "make_activation",
    "make_optimizer",
    "parse_arch",
    "preset",
    "record_trace",
    "rel_error",
    "save_session",
    "to_torch",
]
