"""Datasets, SFT jobs and evaluation metrics (behaviour gaps). Never imports assistant/ or ui/."""
