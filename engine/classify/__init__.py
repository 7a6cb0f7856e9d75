"""Emotion classification: ONNX models, the model registry and the micro-batching runtime."""
