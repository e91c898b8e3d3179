"""Training side of strcnn-sdk: the STRCNN+DTB model in PyTorch and its export to ONNX."""
