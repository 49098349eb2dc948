"""The Gradio app. The only package that imports gradio."""
