"""`vae-mnist explore`'s library: a live page of a trained run's latent space.

`explorer.Explorer` answers the page's questions from the run's model and test set;
`server.ExploreServer` serves the page's files (``static/``) and those answers as JSON.
"""
