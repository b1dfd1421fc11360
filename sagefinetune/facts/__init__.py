"""Facts: instance types and prices, hosting prices, container images, the model table, the defaults."""
