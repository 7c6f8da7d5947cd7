"""Attribute names of the GenAI conventions the mapping understands, in priority order.

Sources: OpenTelemetry semantic conventions (gen-ai, current and deprecated names),
OpenInference ``semantic_conventions.md``, OpenLLMetry ``semconv_ai`` and Pydantic AI's
instrumentation.  Where several names can carry one value, the first present wins.
"""

from __future__ import annotations

from agenttrail.storage import STEP_KINDS

# Step kind, tried in this order: gen_ai.operation.name, openinference.span.kind,
# traceloop.span.kind, llm.request.type, agenttrail.step.type.  An unknown gen_ai.operation.name falls through to
# the next rule; an unknown value of a later attribute gives "other".
OPERATION_KINDS = {
    "chat": "llm", "text_completion": "llm", "generate_content": "llm",
    "embeddings": "embedding", "retrieval": "retrieval", "execute_tool": "tool",
    "invoke_agent": "agent", "create_agent": "agent", "invoke_workflow": "workflow",
}
OPENINFERENCE_KINDS = {
    "LLM": "llm", "EMBEDDING": "embedding", "RETRIEVER": "retrieval", "RERANKER": "retrieval",
    "TOOL": "tool", "AGENT": "agent", "CHAIN": "workflow", "GUARDRAIL": "guardrail",
    "EVALUATOR": "other", "PROMPT": "other",
}
# OpenLLMetry "task" is a decorated function inside a workflow — the same role as an
# OpenInference CHAIN, so both are "workflow" steps.
TRACELOOP_KINDS = {"workflow": "workflow", "task": "workflow", "agent": "agent", "tool": "tool"}
REQUEST_TYPE_KINDS = {"chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "retrieval"}
# Last resort: the agenttrail SDK's own step type (sdk/_attributes.py STEP_TYPE).
AGENTTRAIL_KINDS = {kind: kind for kind in STEP_KINDS}

MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.response.model_name",
              "llm.model_name", "llm.request.model_name", "embedding.model_name", "reranker.model_name")
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name", "tool_call.function.name")
TOOL_CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool_call.id", "tool.id")
# Tool arguments: the first two on any span; the rest only on tool steps, where they are
# the arguments (elsewhere input.value / traceloop.entity.input are content).
TOOL_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "tool_call.function.arguments",
                      "tool_arguments", "input.value", "traceloop.entity.input")
AGENT_NAME_KEYS = ("gen_ai.agent.name", "agent.name", "agent_name")
SESSION_KEYS = ("gen_ai.conversation.id", "session.id", "traceloop.association.properties.session_id",
                "traceloop.association.properties.conversation_id",
                "traceloop.association.properties.thread_id")
USER_KEYS = ("user.id", "enduser.id", "traceloop.association.properties.user_id", "gen_ai.user", "llm.user")
ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")
FINISH_REASON_KEYS = ("gen_ai.response.finish_reasons", "gen_ai.response.finish_reason",
                      "llm.response.finish_reason", "llm.finish_reason", "llm.response.stop_reason")
PROJECT_KEYS = ("agenttrail.project", "openinference.project.name")

# Token fields of a step → the attributes that carry them, in priority order.
TOKEN_FIELDS: dict[str, tuple[str, ...]] = {
    "input": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
              "llm.usage.input_tokens", "llm.usage.prompt_tokens"),
    "output": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
               "llm.token_count.completion", "llm.usage.output_tokens", "llm.usage.completion_tokens"),
    "cache_read": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                   "llm.token_count.prompt_details.cache_read", "llm.usage.cache_read_input_tokens",
                   "gen_ai.usage.details.cache_read_tokens", "gen_ai.usage.input_tokens_details.cached"),
    "cache_creation": ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
                       "llm.token_count.prompt_details.cache_write", "llm.usage.cache_creation_input_tokens",
                       "gen_ai.usage.details.cache_write_tokens"),
    "reasoning": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                  "llm.token_count.completion_details.reasoning", "gen_ai.usage.details.reasoning_tokens",
                  "gen_ai.usage.output_tokens_details.reasoning"),
    "total": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total"),
}
# Explicit per-call cost in USD (not in the OTel semconv; OpenInference, Pydantic AI, others).
COST_KEYS = ("llm.cost.total", "gen_ai.usage.cost", "gen_ai.usage.total_cost", "operation.cost")

# Unknown keys with these prefixes are reported as unmapped usage.  gen_ai.aggregated_usage.*
# (Pydantic AI agent runs) is deliberately not among them: it repeats the children's usage
# and stays an attribute of the agent step only.
UNMAPPED_PREFIXES = ("gen_ai.usage.", "llm.token_count.", "llm.usage.")
KNOWN_USAGE_KEYS = frozenset(
    [key for keys in TOKEN_FIELDS.values() for key in keys] + list(COST_KEYS)
    + ["llm.usage.token_type"]  # OpenLLMetry metric dimension, not a count
)

# Step field → the attributes that carry it, best first.  One key feeds one field.
FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "operation": ("gen_ai.operation.name",),
    "openinference_kind": ("openinference.span.kind",),
    "traceloop_kind": ("traceloop.span.kind",),
    "request_type": ("llm.request.type",),
    "agenttrail_kind": ("agenttrail.step.type",),
    "entity_name": ("traceloop.entity.name",),
    "model": MODEL_KEYS,
    "provider": PROVIDER_KEYS,
    "tool_name": TOOL_NAME_KEYS,
    "tool_call_id": TOOL_CALL_ID_KEYS,
    "tool_arguments": TOOL_ARGUMENT_KEYS[:2],
    "tool_step_arguments": TOOL_ARGUMENT_KEYS[2:],
    "agent_name": AGENT_NAME_KEYS,
    "session_id": SESSION_KEYS,
    "user_id": USER_KEYS,
    "environment": ENVIRONMENT_KEYS,
    "error_type": ("error.type",),
    "finish_reasons": FINISH_REASON_KEYS,
    "cost": COST_KEYS,
    **TOKEN_FIELDS,
}
