"""The frozen encoder, the product quantizer, the code-indexed table and its tuning."""
