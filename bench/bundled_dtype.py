import time, json, sys, os, torch
from pathlib import Path
os.environ["HF_HUB_OFFLINE"]="1"
from assistant import models
from transformers import AutoModelForCausalLM, AutoTokenizer
g = models.bundled_gguf()
out = {}
for dt in ["float32","bfloat16","float16"]:
    d = Path(f"/tmp/dt/m-{dt}")
    if not d.exists():
        t=time.perf_counter(); models.convert_gguf(g, d, dt); out[dt+"_convert_s"]=time.perf_counter()-t
    size = sum(f.stat().st_size for f in d.iterdir())
    t=time.perf_counter(); m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32); tok=AutoTokenizer.from_pretrained(d); load=time.perf_counter()-t
    prompts = ["What is the capital of France?", "Turn this into JSON with keys intent and city: 'book a table in Paris'", "Write one sentence about the sea.", "What is 12 times 7?", "Name three primary colours."]
    answers=[]; logits=[]
    t=time.perf_counter(); ntok=0
    for p in prompts:
        ids = tok.apply_chat_template([{"role":"user","content":p}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            o = m.generate(**ids, max_new_tokens=48, do_sample=False)
            logits.append(m(**ids).logits[0,-1])
        ntok += o.shape[1]-ids["input_ids"].shape[1]
        answers.append(tok.decode(o[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    gen=time.perf_counter()-t
    out[dt]={"mb":size/1e6,"load_s":load,"tok_per_s":ntok/gen,"answers":answers,"logits":[l.tolist() for l in logits]}
ref=out["float32"]
for dt in ["bfloat16","float16"]:
    diffs=[max(abs(a-b) for a,b in zip(x,y)) for x,y in zip(ref["logits"],out[dt]["logits"])]
    out[dt]["max_logit_diff"]=max(diffs)
    out[dt]["same_answers"]=sum(a==b for a,b in zip(ref["answers"],out[dt]["answers"]))
for dt in ["float32","bfloat16","float16"]:
    o=out[dt]; o.pop("logits")
print(json.dumps(out, indent=1))
print(json.dumps(models.__dict__.get('x')))
