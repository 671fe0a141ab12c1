"""What the report draws: plot data, then figures.

``data.py`` computes the plot data from the results DataFrame (pandas only); ``render.py`` draws
it with matplotlib's object API.
"""
