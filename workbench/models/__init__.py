"""The model adapter (groups for any ``nn.Module``, prefix/suffix splits), plain batched inference
and the project's ResNets."""
from .adapter import ALL, Group, ModelAdapter, adapt, check_logits, forward_logits, logits_of
from .graph import Split, split_for
from .predict import error_rate, predict_logits
from .registry import ARCHITECTURES, build_model, first_group_stage, group_names, group_params
from .resnet import BasicBlock, ResNet, cifar_resnet18, small_resnet
from .resnet9 import ResNet9, resnet9

__all__ = ["ALL", "ARCHITECTURES", "BasicBlock", "Group", "ModelAdapter", "ResNet", "ResNet9", "Split", "adapt",
           "build_model", "check_logits", "cifar_resnet18", "error_rate", "first_group_stage", "forward_logits",
           "group_names", "group_params", "logits_of", "predict_logits", "resnet9", "small_resnet", "split_for"]
