"""Reference outputs of torchvision's ResNets and of a Hugging Face-style BERT, for
tests/nn_reference_test.cpp.

Usage: nn_reference.py OUT_DIR. Writes, for each model M, OUT_DIR/M.safetensors (the
state_dict, PyTorch's names) and OUT_DIR/M_io.safetensors (inputs and eval-mode outputs).
Exit code 3 when torch or torchvision cannot be imported (the C++ test then skips).

The safetensors format is written by hand (the `safetensors` package is not a dependency):
an 8-byte little-endian header length, a JSON header padded with spaces to a multiple of 8,
then the raw little-endian tensor bytes in header order.

The BERT is written here in plain torch, since `transformers` is not installed: module and
parameter names, post-LayerNorm layers, exact (erf) GELU, eps 1e-12 and the additive
"extended" attention mask (finfo.min where the mask is 0) follow transformers' modeling_bert.py.
"""
import json
import math
import struct
import sys

try:
    import torch
    from torch import nn
    import torchvision
except ImportError as e:  # the C++ test reports Skipped with this message
    print(f"nn_reference.py: {e}")
    sys.exit(3)

DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.bool: "BOOL"}


def save(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def randomize_norms(model):
    """Batch-norm statistics and affine parameters away from their initial ones and zeros, so
    that evaluation mode and the loaded statistics are really tested."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)


def resnets(out):
    # ResNet-18 with the CIFAR stem: conv1 3x3 stride 1, no max-pool.
    r18 = torchvision.models.resnet18(num_classes=10)
    r18.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    r18.maxpool = nn.Identity()
    # ResNet-50 with the ImageNet stem.
    r50 = torchvision.models.resnet50(num_classes=7)
    for name, model, shape in (("resnet18_cifar", r18, (2, 3, 16, 16)), ("resnet50", r50, (2, 3, 32, 32))):
        randomize_norms(model)
        model.eval()
        x = torch.randn(*shape)
        with torch.no_grad():
            logits = model(x)
        save(f"{out}/{name}.safetensors", model.state_dict())
        save(f"{out}/{name}_io.safetensors", {"x": x, "logits": logits})


# ---- a Hugging Face-style BERT ----------------------------------------------------------------


class Cfg:
    vocab_size, hidden, layers, heads, intermediate, max_position, type_vocab = 40, 32, 2, 4, 64, 16, 2
    eps = 1e-12


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden)
        self.position_embeddings = nn.Embedding(c.max_position, c.hidden)
        self.token_type_embeddings = nn.Embedding(c.type_vocab, c.hidden)
        self.LayerNorm = nn.LayerNorm(c.hidden, eps=c.eps)

    def forward(self, ids, types):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        h = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(types)
        return self.LayerNorm(h)


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.size = c.heads, c.hidden // c.heads
        self.query, self.key, self.value = (nn.Linear(c.hidden, c.hidden) for _ in range(3))

    def split(self, x):
        b, l, _ = x.shape
        return x.view(b, l, self.heads, self.size).permute(0, 2, 1, 3)

    def forward(self, x, ext_mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.size) + ext_mask
        ctx = torch.softmax(scores, dim=-1) @ v
        b, _, l, _ = ctx.shape
        return ctx.permute(0, 2, 1, 3).reshape(b, l, -1)


class DenseNorm(nn.Module):  # BertSelfOutput / BertOutput: LayerNorm(dense(x) + residual)
    def __init__(self, c, n_in):
        super().__init__()
        self.dense = nn.Linear(n_in, c.hidden)
        self.LayerNorm = nn.LayerNorm(c.hidden, eps=c.eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseNorm(c, c.hidden)

    def forward(self, x, ext_mask):
        return self.output(self.self(x, ext_mask), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden, c.intermediate)

    def forward(self, x):
        return nn.functional.gelu(self.dense(x))  # exact erf GELU


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseNorm(c, c.intermediate)

    def forward(self, x, ext_mask):
        a = self.attention(x, ext_mask)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.layers))


class Pooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden, c.hidden)


class Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        self.pooler = Pooler(c)

    def forward(self, ids, types, mask):
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        h = self.embeddings(ids, types)
        for layer in self.encoder.layer:
            h = layer(h, ext)
        return h, torch.tanh(self.pooler.dense(h[:, 0]))


class Transform(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden, c.hidden)
        self.LayerNorm = nn.LayerNorm(c.hidden, eps=c.eps)


class Predictions(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transform = Transform(c)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))


class Cls(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.predictions = Predictions(c)


class Full(nn.Module):
    """bert + the masked-LM head (cls.*) + a 3-way classifier, under Hugging Face's names."""

    def __init__(self, c):
        super().__init__()
        self.bert = Bert(c)
        self.cls = Cls(c)
        self.classifier = nn.Linear(c.hidden, 3)

    def forward(self, ids, types, mask, positions):
        seq, pooled = self.bert(ids, types, mask)
        picked = torch.gather(seq, 1, positions[:, :, None].expand(-1, -1, seq.shape[2]))
        t = self.cls.predictions.transform
        h = t.LayerNorm(nn.functional.gelu(t.dense(picked)))
        mlm = h @ self.bert.embeddings.word_embeddings.weight.T + self.cls.predictions.bias
        return seq, mlm, self.classifier(pooled)


def bert(out):
    c = Cfg()
    model = Full(c)
    with torch.no_grad():  # away from ones/zeros, so that every parameter matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    ids = torch.randint(0, c.vocab_size, (2, 7))
    types = torch.randint(0, c.type_vocab, (2, 7))
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    positions = torch.tensor([[0, 3, 6], [1, 2, 4]])
    with torch.no_grad():
        seq, mlm, cls = model(ids, types, mask, positions)
    save(f"{out}/bert.safetensors", model.state_dict())
    save(f"{out}/bert_io.safetensors", {"input_ids": ids, "token_type_ids": types, "attention_mask": mask,
                                        "positions": positions, "sequence": seq, "mlm_logits": mlm,
                                        "cls_logits": cls})


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(2)
    resnets(sys.argv[1])
    bert(sys.argv[1])
    print("ok")
