"""Networks with the book's interface (predict, loss, accuracy, gradient, save/load_params).

    from convcore.models import DeepConvNet
    net = DeepConvNet()                      # the book's architecture and defaults
    net = build_model("resnet", dtype=np.float32)
"""
from .base import Net
from .caffe import convert_caffemodel, read_caffemodel
from .book import DeepConvNet, SimpleConvNet
from .feature_nets import FeatureNet, convert_torchvision_vgg, feature_net
from .fully_convolutional import FullyConvNet, to_fully_convolutional
from .modern import FCN, MobileNet, ResNet, VGGNet, XceptionNet

MODELS = {
    "simpleconvnet": SimpleConvNet,
    "deepconvnet": DeepConvNet,
    "vgg": VGGNet,
    "mobilenet": MobileNet,
    "xception": XceptionNet,
    "resnet": ResNet,
    "fcn": FCN,
}


def build_model(name, **kwargs):
    """A network by case-insensitive name (see MODELS); kwargs go to its constructor."""
    try:
        cls = MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}") from None
    return cls(**kwargs)


__all__ = ["Net", "SimpleConvNet", "DeepConvNet", "VGGNet", "MobileNet", "XceptionNet",
           "ResNet", "FCN", "MODELS", "build_model", "FullyConvNet",
           "to_fully_convolutional", "FeatureNet", "feature_net", "convert_torchvision_vgg",
           "convert_caffemodel", "read_caffemodel"]
