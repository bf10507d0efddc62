"""The command line on top of everything: ``tyokyky run``, ``query``, ``synth``, ``keygen``, ``demo``,
``bench``. It calls the Dagster layer (``assets``) and the plain core (``pipelines``, ``reports``);
nothing imports it."""
