"""The book's chapter-8 applications on convcore.

    convcore.apps.style          neural style transfer (command: python -m convcore.style)
    convcore.apps.segmentation   FCN-32s/16s segmentation of Fashion-MNIST canvases
                                 (command: python -m convcore.apps.segmentation)

Fully convolutional networks made from classifiers live in convcore.models
(to_fully_convolutional).
"""
# submodules are imported on use (from convcore.apps import style), not here: importing
# segmentation here would make `python -m convcore.apps.segmentation` run it twice
__all__ = ["style", "segmentation"]
