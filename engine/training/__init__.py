"""Training pipeline: corpus readers, the linear n-gram model, calibration, ONNX export, metrics and CLI.

Needs the ``train`` extra (scikit-learn, onnx, tqdm); serving never imports this package.
"""
