#!/usr/bin/python3
"""PyTorch peer of the workbook's foundation benchmark (`workbook bench model`).

The same Llama architecture as lib/PersonaWorkbook/Models/LlamaForCausalLM.cs (RMSNorm in float32, rotary
embeddings with halves rotated, grouped-query attention, SwiGLU MLP, untied head, normal(0, 0.02) init), the same
training step (AdamW, matrices-only weight decay, cosine schedule, clip_grad_norm_, mean next-token loss) and the same
greedy batched generation with and without a KV cache. Written for Debian's python3-torch 1.13, which has no
scaled_dot_product_attention, so attention is spelled out. Prints one JSON object on stdout.

Run: /usr/bin/python3 peer_llama.py --config config.json --steps 20 --warmup 3 --batch 8 --context 128 \
         --prompt 16 --new 112 --threads 2 --seed 0
     /usr/bin/python3 peer_llama.py --answers job.json --threads 2   (`workbook bench answers`: sample an organism's
         evaluation answers as OrganismEvaluator does; prints the token ids and the seconds spent)
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_heads = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads") or self.n_heads
        self.head_dim = c.get("head_dim") or c["hidden_size"] // self.n_heads
        d = c["hidden_size"]
        # Qwen2 has q/k/v biases; Llama has them only when attention_bias says so.
        bias = c.get("attention_bias")
        bias = c.get("model_type") == "qwen2" if bias is None else bias
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)

    def forward(self, x, cos, sin, mask, past):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)     # (B, nkv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        q = q * cos.unsqueeze(1) + rotate_half(q) * sin.unsqueeze(1)
        k = k * cos.unsqueeze(1) + rotate_half(k) * sin.unsqueeze(1)
        if past is not None:
            k = torch.cat([past[0], k], 2)                                            # (B, nkv, T_all, hd)
            v = torch.cat([past[1], v], 2)
        present = (k, v)
        if self.n_kv != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.n_kv, dim=1)                 # (B, nh, T_all, hd)
            v = v.repeat_interleave(self.n_heads // self.n_kv, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask           # (B, nh, T, T_all)
        y = torch.softmax(scores, -1) @ v                                             # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
        return self.o_proj(y), present


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, f = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c.get("rms_norm_eps", 1e-6)
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], eps)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], eps)

    def forward(self, x, cos, sin, mask, past):
        a, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), present


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c.get("rms_norm_eps", 1e-6))
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        theta = c.get("rope_theta", 10000.0)
        self.inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.inv_freq = self.inv_freq.float()
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("layernorm.weight") or name == "norm.weight":
                    p.fill_(1.0)
                else:
                    p.normal_(0, 0.02)

    def forward(self, ids, past=None, positions=None, real=None):
        """real (B, T_past + T), True on tokens (False on left padding); positions (B, T) then count real tokens."""
        B, T = ids.shape
        start = 0 if past is None else past[0][0].shape[2]
        if positions is None:
            positions = torch.arange(start, start + T).unsqueeze(0).expand(B, T)
        freqs = positions.float().unsqueeze(-1) * self.inv_freq                       # (B, T, hd/2)
        emb = torch.cat([freqs, freqs], -1)                                           # (B, T, hd)
        cos, sin = emb.cos(), emb.sin()
        query = torch.arange(start, start + T).unsqueeze(1)
        key = torch.arange(0, start + T).unsqueeze(0)
        allowed = key <= query                                                        # (T, T_all)
        if real is not None:
            # A pad query sees itself only, so its softmax stays finite (as in the C# model).
            allowed = (allowed & real[:, None, None, :]) | (key == query)             # (B, 1, T, T_all)
        mask = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
        x = self.embed_tokens(ids)
        presents = []
        for i, layer in enumerate(self.layers):
            x, present = layer(x, cos, sin, mask, None if past is None else past[i])
            presents.append(present)
        return self.lm_head(self.norm(x)), presents


def generate(model, prompts, new_tokens, use_cache):
    ids = prompts
    past = None
    with torch.no_grad():
        for _ in range(new_tokens):
            if use_cache:
                logits, past = model(ids if past is None else ids[:, -1:], past)
            else:
                logits, _ = model(ids)
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return ids


def load_checkpoint(directory):
    """A workbook / Hugging Face checkpoint directory (config.json + one model.safetensors) as a Llama in eval mode."""
    with open(f"{directory}/config.json") as f:
        config = json.load(f)
    model = Llama(config)
    with open(f"{directory}/model.safetensors", "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    state = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        state[name.removeprefix("model.")] = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"]).float()
    if config.get("tie_word_embeddings"):
        state["lm_head.weight"] = state["embed_tokens.weight"]
    model.load_state_dict(state)
    return model.eval()


def sample_answers(model, job):
    """Left-padded batches of (prompt, sample) rows, KV cache, temperature sampling, stop tokens: the evaluator's loop."""
    rows = [p for p in job["prompts"] for _ in range(job["samples"])]
    stops, pad, batch = set(job["stop"]), job["pad"], job["batch"]
    answers, stopped = [], []
    with torch.no_grad():
        for b, first in enumerate(range(0, len(rows), batch)):
            chunk = rows[first:first + batch]
            generator = torch.Generator().manual_seed(job["seed"] * 1_000_003 + b)
            width = max(len(r) for r in chunk)
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in chunk])                  # (B, L)
            real = torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in chunk])
            positions = (real.long().cumsum(1) - 1).clamp(min=0)
            tokens, done, past = [[] for _ in chunk], [False] * len(chunk), None
            for _ in range(job["max_new_tokens"]):
                logits, past = model(ids, past, positions, real)
                probs = torch.softmax(logits[:, -1].float() / job["temperature"], -1)
                chosen = torch.multinomial(probs, 1, generator=generator)                      # (B, 1)
                for i, t in enumerate(chosen[:, 0].tolist()):
                    if not done[i]:
                        if t in stops:
                            done[i] = True
                        else:
                            tokens[i].append(t)
                if all(done):
                    break
                real = torch.cat([real, torch.ones(len(chunk), 1, dtype=torch.bool)], 1)
                positions, ids = positions[:, -1:] + 1, chosen
            answers.extend(tokens)
            stopped.extend(done)
    return answers, stopped


def answers_main(args):
    torch.set_num_threads(args.threads)
    with open(args.answers) as f:
        job = json.load(f)
    model = load_checkpoint(job["checkpoint"])
    t0 = time.perf_counter()
    answers, stopped = sample_answers(model, job)
    print(json.dumps({"runtime": f"PyTorch {torch.__version__}", "seconds": time.perf_counter() - t0,
                      "threads": torch.get_num_threads(), "answers": answers, "stopped": stopped}))


def blas_library():
    """The BLAS shared object actually mapped into this process (torch's config only says 'generic')."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return ", ".join(sorted(paths)) or "none mapped"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config")
    ap.add_argument("--answers", help="a sampling job (JSON): checkpoint, encoded prompts and the evaluator's settings")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=112)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    if args.answers:
        return answers_main(args)
    if not args.config:
        ap.error("--config is required")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(args.config) as f:
        config = json.load(f)
    model = Llama(config)
    params = sum(p.numel() for p in model.parameters())

    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(5):  # best of 5 rounds: the machine may be shared
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        rates.append(2 * n ** 3 * 4 / (time.perf_counter() - t0))
    matmul_flops = max(rates)

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.0}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    total = args.warmup + args.steps
    vocab = config["vocab_size"]
    model.train()
    loss_value = float("nan")
    for step in range(total):
        if step == args.warmup:
            t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / total))
        ids = torch.randint(0, vocab, (args.batch, args.context))
        logits, _ = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = loss.item()
    train_tps = args.steps * args.batch * args.context / (time.perf_counter() - t0)

    model.eval()
    prompts = torch.randint(0, vocab, (args.batch, args.prompt))
    gen = {}
    for use_cache in (True, False):
        generate(model, prompts, 4, use_cache)
        t0 = time.perf_counter()
        out = generate(model, prompts, args.new, use_cache)
        gen[use_cache] = args.batch * args.new / (time.perf_counter() - t0)
        assert out.shape == (args.batch, args.prompt + args.new)

    blas_line = next((item for item in torch.__config__.show().replace(",", "\n").split("\n") if "BLAS_INFO" in item), "").strip()
    print(json.dumps({
        "runtime": f"PyTorch {torch.__version__}",
        "parameters": params,
        "train_tokens_per_s": train_tps,
        "gen_cache_tokens_per_s": gen[True],
        "gen_nocache_tokens_per_s": gen[False],
        "matmul_flops_per_s": matmul_flops,
        "final_loss": loss_value,
        "threads": torch.get_num_threads(),
        "blas": f"{blas_line}; loaded: {blas_library()}"
                + (f"; OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}" if "OPENBLAS_CORETYPE" in os.environ else ""),
    }))


if __name__ == "__main__":
    main()
