"""Self-consuming loops of learned models on the 2-D 25-mode grid: EM mixture and a RealNVP flow.

  jaxlab run configs/mad_learned.py:quick --workdir runs/mad_learned-quick  # ~1-2 min, 2 CPUs
  jaxlab run configs/mad_learned.py:gpu --workdir runs/mad_learned-gpu      # sized for 1 H100
  jaxlab run configs/mad_learned.py --workdir runs/mad_learned              # CPU, several min

Quick: 156 s of CPU time measured (533 s wall on a shared 2-core machine at load ~13-17). The gpu
variant (8 mixture chains and 4 flow chains per (loop, λ)) has not been run: no device.

Expect (Alemohammad et al., arXiv:2307.01850, appendix; Su, kexue.fm/archives/9687): under the
fully synthetic loop the models drift and lose modes and recall, faster with bias λ < 1 (recall
falls faster than precision); synthetic augmentation slows the loss; the fresh-data loop holds
modes and recall near their generation-1 values. Qualitative: no reference numbers exist.
"""

import ml_collections

from jaxlab import config_args


def get_config(arg=None):
    opts = config_args.parse_arg(arg, quick=False, gpu=False, seed=0)
    q, gpu = opts.quick, opts.gpu
    c = ml_collections.ConfigDict()
    c.experiment = "mad_learned"  # key into jaxlab.experiments.RUNNERS
    c.seed = opts.seed  # every chain's key derives from it
    c.num_devices = 1 if q else 0  # data-parallel devices over the chain axis (0 = all)
    c.truth = dict(per_side=5, spacing=2.0, std=0.2)  # 5 x 5 grid of isotropic modes
    c.eval = dict(
        num=1000 if q else 2000,  # real reference and generated samples per evaluation
        k=5,  # k of the k-NN precision/recall (the paper's)
        mode_radius=0.6,  # a sample counts for a mode within 3 std of its center
        mode_min_count=5,  # ... and the mode is covered with at least this many such samples
    )
    c.mixture = dict(
        num_components=25,  # EM components (= true modes)
        num_iters=50,  # EM iterations per fit
        n_init=1000,  # real samples of G_1
        n_syn=1000,  # synthetic samples per generation
        n_real=250,  # real samples per generation (fresh, or the fixed set for augmentation)
        generations=10 if q else 30,
        lams=(1.0, 0.8, 0.5),  # sampling bias: component covariances scaled by λ
        seeds=1 if q else 8 if gpu else 4,  # chains per (kind, λ)
    )
    c.flow = dict(
        num_layers=4 if q else 8,  # RealNVP couplings
        hidden=32 if q else 64,  # coupling MLP width
        steps=200 if q else 600,  # full-batch Adam steps per fit
        learning_rate=5e-3 if q else 3e-3,
        n_init=500 if q else 1000,
        n_syn=500 if q else 1000,
        n_real=125 if q else 250,
        generations=5 if q else 20,
        lams=(1.0, 0.5) if q else (1.0, 0.8, 0.5),  # latent temperature λ
        seeds=1 if q else 4 if gpu else 1,
    )
    c.thresholds = dict(
        drop=0.05,  # a "loss" of recall means recall(T) < recall(1) − drop
        hold=0.05,  # the fresh loop "holds" recall when recall(T) >= recall(1) − hold
    )
    c.known_disagreements = ()  # (claim name, reason) pairs this config is known to miss
    return c
