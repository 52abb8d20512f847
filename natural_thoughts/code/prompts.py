"""Prompt templates for generating programs: a fenced Python program the code verifier can run.

Use one as `generate: {prompt_template: ...}` (or `generate(..., prompt_template=CODE_PROMPT)`), and
`n` samples per problem: `verify` runs each sample's program on the problem's tests, and `PassRate`
reads the share of samples that pass (open-r1's pass rate).
"""

CODE_PROMPT = (
    "{problem}\n\n"
    "Solve the problem above in Python 3. If starter code is given, complete it (keep its class and "
    "function names); otherwise write a whole program that reads standard input and prints the answer. "
    "Reason it through first, then give your final solution as one fenced block:\n\n"
    "```python\n# your solution\n```"
)
"""The user message for a code problem: the statement, then the ask for one fenced program."""
