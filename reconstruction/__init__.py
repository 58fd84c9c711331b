"""SpT UNet, SpT UNet-B and a CNN UNet baseline: data loading, training, metrics, evaluation, reports."""
