"""Kinds of training, one module each; :data:`paddle_tag.engine.builder.TASKS` names them."""
