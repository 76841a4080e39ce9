"""Teacher-labelled non-equilibrium frames (`foundation synth`): seeds -> perturbations -> teacher labels -> extxyz.

Entry points: `generate.synthesize(out, SynthConfig(...))` writes a file; `generate.generate_frames(config)`
returns the frames. See docs/synth.md.
"""
