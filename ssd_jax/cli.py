"""What every command line shares: the --verbose flag and a --help of one line per flag.

absl's own --help prints each flag on two or more lines, among absl's logging flags, and exits
with status 1. `run` answers --help (-h, -?, --helpshort) itself: the command's docstring, then
one line `--name: help (default: value)` for each of the command's own flags, status 0.
--helpfull still prints absl's full list.
"""

import sys

from absl import app
from absl import flags

HELP_FLAGS = ('--help', '-help', '-h', '-?', '--helpshort', '-helpshort')


def define_verbose() -> None:
  """Defines --verbose (errors.show_traceback reads it); a command calls this with its flags.

  Idempotent, so two command modules imported into one process (tests) can both call it.
  """
  if 'verbose' not in flags.FLAGS:
    flags.DEFINE_bool('verbose', False, 'On an error, show the traceback instead of one line '
                      '(also SSD_JAX_TRACEBACK=1).')


def _required(flag) -> bool:
  """Whether `flag` is marked required (absl keeps that as a validator with this message)."""
  return any('must have a value other than None' in getattr(v, 'message', '')
             for v in flag.validators)


def _default(flag) -> str:
  default = flag.default_unparsed  # As written: a config file's path, not the config.
  if default is None:
    return 'required' if _required(flag) else 'default: none'
  if isinstance(default, (list, tuple)):
    return f'default: {",".join(str(v) for v in default) or "empty"}'
  return f'default: {"empty" if default == "" else default}'


def flag_lines(module_name: str | None = None) -> list[str]:
  """`--name: help (default: value)` for each flag that `module_name` (default: the program
  being run) defined, and --verbose."""
  by_module = flags.FLAGS.flags_by_module_dict()
  own = list(by_module.get(module_name or sys.argv[0], []))
  if 'verbose' in flags.FLAGS and flags.FLAGS['verbose'] not in own:
    own.append(flags.FLAGS['verbose'])
  lines = []
  for flag in own:
    text = ' '.join((flag.help or '').split())
    lines.append(f'--{flag.name}: {text} ({_default(flag)})')
  return lines


def help_text(module_name: str | None = None) -> str:
  """The command's docstring, then its flags, one line each."""
  doc = (sys.modules['__main__'].__doc__ or '').strip('\n')
  return f'{doc}\n\nFlags:\n' + '\n'.join(flag_lines(module_name)) + '\n'


def asks_for_help(argv: list[str]) -> bool:
  """Whether `argv` has a help flag before a `--` that ends the flags."""
  for arg in argv[1:]:
    if arg == '--':
      return False
    if arg in HELP_FLAGS:
      return True
  return False


def run(main, flags_parser=None) -> None:
  """`absl.app.run(main)`, with --help printed by `help_text` (exit status 0)."""
  if asks_for_help(sys.argv):
    sys.stdout.write(help_text())
    sys.exit(0)
  if flags_parser is None:
    app.run(main)
  else:
    app.run(main, flags_parser=flags_parser)
