"""Architectures with named editable groups (the paper's Table 2 subsets)."""
from .registry import ARCHITECTURES, build_model, first_group_stage, group_names, group_params
from .resnet import BasicBlock, ResNet, cifar_resnet18, small_resnet

__all__ = ["ARCHITECTURES", "BasicBlock", "ResNet", "build_model", "cifar_resnet18",
           "first_group_stage", "group_names", "group_params", "small_resnet"]
