"""The embedded contextual-scenes benchmark: rendering, the dataset generator, its two small
pretrained streams (architecture, pretraining and registration) in one package."""
