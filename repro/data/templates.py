"""Named prompt templates. A paper names its template; nothing is inferred from a dataset name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from repro.registry import Registry

# (problem text, tokenizer) -> prompt string given to the policy
TemplateFn = Callable[[str, Any], str]
TEMPLATES: Registry[TemplateFn] = Registry("prompt template")

DAPO_INSTRUCTION = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{problem}\n\n"
    'Remember to put your answer on its own line after "Answer:".'
)
QWEN_MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


class NoChatTemplate(ValueError):
    """A template that needs the tokenizer's chat template, on a tokenizer without one."""


def _chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise NoChatTemplate("the tokenizer has no chat template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@TEMPLATES.register("raw")
def raw(problem: str, tokenizer: Any) -> str:
    """The problem text exactly (the smoke tier trains and evaluates on raw prompts)."""
    return problem


@TEMPLATES.register("chat")
def chat(problem: str, tokenizer: Any) -> str:
    """The tokenizer's own chat template: one user message, then the assistant header."""
    return _chat(tokenizer, [{"role": "user", "content": problem}])


@TEMPLATES.register("dapo")
def dapo(problem: str, tokenizer: Any) -> str:
    """DAPO arXiv 2503.14476 §3.5 / DAPO-Math-17K prompt: answer on a final 'Answer:' line."""
    return _chat(tokenizer, [{"role": "user", "content": DAPO_INSTRUCTION.format(problem=problem)}])


@TEMPLATES.register("qwen_math")
def qwen_math(problem: str, tokenizer: Any) -> str:
    """Qwen2.5-Math's chain-of-thought template (Dr. GRPO's evaluation)."""
    return _chat(tokenizer, [{"role": "system", "content": QWEN_MATH_SYSTEM}, {"role": "user", "content": problem}])


def render(template: str, problem: str, tokenizer: Any, where: str = "") -> str:
    """The prompt string for `problem` under the named template (unknown names list the valid ones).

    A template that needs a chat template, on a tokenizer without one, or a chat template that fails to render,
    is a ConfigError naming the template and the fix (`where` says whose tokenizer)."""
    from repro.schema import ConfigError

    prefix = f"{where}: " if where else ""
    render_fn = TEMPLATES.get(template)  # an unknown name: the registry's did-you-mean
    try:
        return render_fn(problem, tokenizer)
    except NoChatTemplate:
        raise ConfigError(
            f"{prefix}the prompt template {template!r} renders through the tokenizer's chat template, and this "
            "tokenizer has none (no chat_template in tokenizer_config.json, no chat_template.jinja). Use a "
            "checkpoint that ships one (an instruct model), add one to its folder, or set template: raw "
            "(--set data.template=raw; a benchmark's through eval.benchmarks.<name>.template)"
        ) from None
    except Exception as err:  # jinja's errors (raise_exception in a template, a missing variable)
        raise ConfigError(
            f"{prefix}the tokenizer's chat template fails on the prompt template {template!r}: "
            f"{type(err).__name__}: {err}"
        ) from None
