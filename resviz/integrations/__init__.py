"""Where resviz meets other tools: the object ``resviz.monitor`` yields, and TensorBoard.

A surface, like the command line: it calls the api and writes to the user's tools, and nothing
below it imports it. The monitor itself (:mod:`resviz.measure.monitor`) measures and knows no
logging tool; :class:`resviz.integrations.monitor.Monitor` adds the writers, so the optional
packages load only when one is used (``mon.to_tensorboard`` imports TensorBoard, which comes with
the ``tensorboard`` extra).
"""
