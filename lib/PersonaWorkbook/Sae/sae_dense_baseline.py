"""Dense TopK SAE training step in PyTorch: the baseline `workbook bench-sae` compares against.

The same SAE and step as PersonaWorkbook.Sae's TopK trainer (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in] with
unit rows, b_dec; pre = (x - b_dec) W_enc + b_enc; keep each token's top k, ReLU; x_hat = f W_dec + b_dec; loss =
FVU; decoder-gradient component along each row removed; grad-norm clip 1.0; Adam; rows renormalised), written the
usual dense way: the top-k activations are scattered into a (batch, d_sae) matrix and decoded with a dense matmul, so
autograd does three more batch x d_in x d_sae matmuls in backward. Prints one JSON line of median (and fastest) times in ms.
"""
import argparse
import json
import statistics
import time

import torch


def main():
    p = argparse.ArgumentParser()
    for name, default in [("d-in", 256), ("d-sae", 8192), ("k", 32), ("batch", 4096), ("steps", 10), ("warmup", 2), ("threads", 2), ("seed", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--lr", type=float, default=3e-4)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(a.seed)
    w = torch.randn(a.d_sae, a.d_in, generator=g)
    w /= w.norm(dim=1, keepdim=True)
    W_dec = torch.nn.Parameter(w.clone())
    W_enc = torch.nn.Parameter(w.t().contiguous())
    b_enc = torch.nn.Parameter(torch.zeros(a.d_sae))
    b_dec = torch.nn.Parameter(torch.zeros(a.d_in))
    params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    x = torch.randn(a.batch, a.d_in, generator=g)

    def step():
        opt.zero_grad(set_to_none=False)
        pre = (x - b_dec) @ W_enc + b_enc
        vals, idx = pre.topk(a.k, dim=1)
        f = torch.zeros_like(pre).scatter(1, idx, vals.relu())
        x_hat = f @ W_dec + b_dec
        loss = (x_hat - x).pow(2).sum() / (x - x.mean(0, keepdim=True)).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            W_dec.grad.sub_((W_dec.grad * W_dec).sum(1, keepdim=True) * W_dec)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))

    def encoder():
        with torch.no_grad():
            torch.addmm(b_enc, x - b_dec, W_enc)

    def timed(fn, n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1000)
        return out

    timed(step, a.warmup)
    timed(encoder, a.warmup)
    steps = timed(step, a.steps)
    floor = timed(encoder, a.steps)
    print(json.dumps({"torch": torch.__version__, "step_ms": statistics.median(steps), "encoder_ms": statistics.median(floor),
                      "step_min_ms": min(steps), "encoder_min_ms": min(floor),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
