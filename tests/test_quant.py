"The torchao int8 teacher (`quantization: int8-torchao`): close to the unquantised teacher, with and without a LoRA."
import sys, warnings
import pytest, torch
pytest.importorskip("torchao")
from peft import LoraConfig, get_peft_model
from qwen_kd.core import QwenKDError
from transformers import Qwen2ForCausalLM
from qwen_kd.demo import tiny_qwen2_config
from qwen_kd.models import load_model, quantization_config
from qwen_kd.teacher import TeacherConfig

# int8 per-row weights round each weight by at most half a step (row max / 254); through four layers of 5x-scaled
# weights the largest logit moves by 0.24 of the logits' std (measured; top-1 agreement 0.98). The bound leaves 2x room
# for that, and one layer's scale off by 2x (gap 2.4, measured) breaks it (test_tolerance_catches_a_broken_scale).
TOL = 0.5  # max |logits_int8 - logits| / std(logits)
SHAPE = dict(vocab_size=2000, hidden=128, layers=4, heads=4, kv_heads=2, intermediate=384)

def scaled_tiny():
    "A tiny Qwen2 with weights large enough for peaked logits (the default init's are near-uniform)."
    torch.manual_seed(0)
    c = tiny_qwen2_config(**SHAPE)
    c.bos_token_id = c.eos_token_id = c.pad_token_id = 0  # a 2,000-token vocabulary: fast
    m = Qwen2ForCausalLM(c).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 2 and "embed" not in n: p.mul_(5)
    return m

@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    d = tmp_path_factory.mktemp("quant")
    scaled_tiny().save_pretrained(d/"base")
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(scaled_tiny(), lora).save_pretrained(d/"lora")
    return d

X = torch.randint(0, SHAPE["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(0))

def logits(m) -> torch.Tensor:
    with torch.no_grad(): return m(X).logits

def gap(ref: torch.Tensor, z: torch.Tensor) -> float: return ((z - ref).abs().max() / ref.std()).item()

def check_close(ref: torch.Tensor, z: torch.Tensor):
    "int8 logits within TOL of the reference's spread, and the same argmax at ≥ 95% of positions."
    assert gap(ref, z) <= TOL, f"int8 logits off by {gap(ref, z):.3f} of the logits' std (> {TOL})"
    assert (ref.argmax(-1) == z.argmax(-1)).float().mean() >= 0.95

def test_int8_torchao_logits_close(dirs):
    ref, q = load_model(str(dirs/"base")), load_model(str(dirs/"base"), quantization="int8-torchao")
    assert q.model.layers[0].mlp.up_proj.weight.qdata.dtype == torch.int8
    z0, z = logits(ref), logits(q)
    assert z0.std() > 1  # peaked logits: the tolerance means something
    check_close(z0, z)

def test_tolerance_catches_a_broken_scale(dirs):
    ref, q = load_model(str(dirs/"base")), load_model(str(dirs/"base"), quantization="int8-torchao")
    with torch.no_grad(): q.model.layers[1].mlp.down_proj.weight.scale.mul_(2)  # a wrong dequantisation scale
    with pytest.raises(AssertionError, match="int8 logits off by"): check_close(logits(ref), logits(q))

def test_int8_torchao_with_lora(dirs):
    ref = load_model(str(dirs/"base"), str(dirs/"lora"))
    q = load_model(str(dirs/"base"), str(dirs/"lora"), "int8-torchao")
    assert type(q.base_model.model.model.layers[0].mlp.up_proj).__name__ == "TorchaoLoraLinear"
    z0, z = logits(ref), logits(q)
    assert gap(z0, logits(load_model(str(dirs/"base")))) > 10 * TOL  # the adapter changes the logits...
    check_close(z0, z)  # ...and the int8 teacher keeps that change

def test_merge_refused_on_int8_torchao(dirs):
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        q = load_model(str(dirs/"base"), str(dirs/"lora"), "int8-torchao", merge_lora=True)
    assert any("merge_lora ignored for a int8-torchao base" in str(w.message) for w in ws)
    assert any("lora_A" in n for n, _ in q.named_parameters())  # still unmerged

def test_missing_torchao_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(QwenKDError, match=r"pip install qwen_kd\[torchao\]"): quantization_config("int8-torchao")

def test_teacher_config_accepts_it():
    assert TeacherConfig(quantization="int8-torchao").quantization == "int8-torchao"
    with pytest.raises(QwenKDError, match="int8-torchao"): quantization_config("int8")
