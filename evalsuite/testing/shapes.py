"""Module shapes of real models, for adapters with real sizes but random numbers (tests and
benchmarks that must show a cost or a bound at the size users train)."""

# Llama-3.1-8B: hidden 4096, kv 1024 (8 heads of 128), intermediate 14336, 32 layers.
# A LoRA of rank 16 on all seven projections is about 168 MB of fp32 factors.
LLAMA_8B_LAYERS = 32
LLAMA_8B_MODULES = {
    "self_attn.q_proj": (4096, 4096),
    "self_attn.k_proj": (1024, 4096),
    "self_attn.v_proj": (1024, 4096),
    "self_attn.o_proj": (4096, 4096),
    "mlp.gate_proj": (14336, 4096),
    "mlp.up_proj": (14336, 4096),
    "mlp.down_proj": (4096, 14336),
}
