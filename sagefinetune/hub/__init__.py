"""The Hugging Face Hub: push a model folder with its model card."""
