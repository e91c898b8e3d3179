"""The shipped models (each an .onnx with its .json sidecar; models.json names them), package data of strcnn_sdk."""
