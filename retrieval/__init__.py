"""Documents, chunks and the Chroma index (knowledge gaps). Never imports assistant/ or ui/."""
