"""Unsupervised domain adaptation: learn the target domain from its unlabelled images.

One module per method, composable (a list of methods with weights, see adaptation.py):
- adversarial.py: gradient reversal + a convolutional domain classifier per feature level
- mmd.py: multi-kernel MMD between pooled source and target features per level
- teacher.py: an EMA teacher's pseudo-labels on weak views, learnt on strong views

Methods see the detector only through the Detector contract (`features(images)`, train and eval
forward), so every family supports every method. target.py reads the target images;
adaptation.py is what the training engine sets up and calls once per step.
"""
