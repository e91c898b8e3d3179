"""The shipped model (an .onnx with its .json sidecar), installed as package data of strcnn_sdk."""
