package main

import (
	"fmt"
	"io"
	"strings"
)

const completionUsage = `Usage: wharf completion bash|zsh

Prints a shell completion script for wharf's commands and flags; -c and
--config complete *.toml files, --frontend the frontend names of the
config given with -c, and a server command's BACKEND/SERVER the names the
running wharf's admin listener reports (wharf server list --names).

  bash:  source <(wharf completion bash)          # current shell
         wharf completion bash > /etc/bash_completion.d/wharf
  zsh:   source <(wharf completion zsh)           # after compinit
         wharf completion zsh > "${fpath[1]}/_wharf"
`

// completionCmd implements `wharf completion bash|zsh`.
func completionCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprint(stderr, completionUsage)
		return 2
	}
	switch args[0] {
	case "bash":
		fmt.Fprint(stdout, bashCompletion())
	case "zsh":
		fmt.Fprint(stdout, zshCompletion())
	case "-h", "--help", "help":
		fmt.Fprint(stdout, completionUsage)
	default:
		fmt.Fprintf(stderr, "wharf completion: no shell %q\n\n%s", args[0], completionUsage)
		return 2
	}
	return 0
}

// frontendNamesSed prints the NAME of every [frontend.NAME] table header.
const frontendNamesSed = `sed -n 's/^[[:space:]]*\[frontend\.\([A-Za-z0-9_-]*\)\].*/\1/p'`

// completionScript fills in a script template: @FRONTENDS@ is
// frontendNamesSed, @TOPICS@ the help topics (from helpTopics, so a new
// topic is completed without touching the scripts).
func completionScript(tmpl string) string {
	return strings.NewReplacer("@FRONTENDS@", frontendNamesSed, "@TOPICS@", helpTopicNames()).Replace(tmpl)
}

// bashCompletion is the script `wharf completion bash` prints.
func bashCompletion() string { return completionScript(bashCompletionTmpl) }

// zshCompletion is the script `wharf completion zsh` prints.
func zshCompletion() string { return completionScript(zshCompletionTmpl) }

const bashCompletionTmpl = `# bash completion for wharf. Load with: source <(wharf completion bash)
_wharf() {
  local cur prev cmd cfg i
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "run check ports tap server help completion version" -- "$cur"))
    return
  fi
  cmd="${COMP_WORDS[1]}"
  case "$prev" in
    -c|--c|-config|--config)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur"))
      return;;
    --cacert|-cacert|--cert|-cert|--key|-key)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$cur"))
      return;;
    --frontend|-frontend)
      # wharf tap takes its config with -c only (it has no --config).
      cfg=/etc/wharf/wharf.toml
      for ((i=1; i<COMP_CWORD-1; i++)); do
        case "${COMP_WORDS[i]}" in -c|--c) cfg="${COMP_WORDS[i+1]}";; esac
      done
      COMPREPLY=($(compgen -W "$(@FRONTENDS@ "$cfg" 2>/dev/null)" -- "$cur"))
      return;;
    --log-format|-log-format)
      COMPREPLY=($(compgen -W "text json" -- "$cur"))
      return;;
    --severity|-severity)
      COMPREPLY=($(compgen -W "emerg alert crit err warning notice info debug err..emerg" -- "$cur"))
      return;;
    --port|-port|--host|-host|--app|-app|--admin|-admin)
      return;;
  esac
  case "$cmd" in
    run|check) COMPREPLY=($(compgen -W "-c --config --log-format" -- "$cur"));;
    ports) COMPREPLY=($(compgen -W "-c --audit --json" -- "$cur"));;
    tap) COMPREPLY=($(compgen -W "-c --admin --cacert --cert --key --frontend --port --severity --host --app --raw" -- "$cur"));;
    server)
      local sub="" args=()
      for ((i=2; i<COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
          -c|--c|--admin|-admin|--cacert|-cacert|--cert|-cert|--key|-key) args+=("${COMP_WORDS[i]}" "${COMP_WORDS[i+1]}"); i=$((i+1));;
          -*) ;;
          *) [ -z "$sub" ] && sub="${COMP_WORDS[i]}";;
        esac
      done
      if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "-c --admin --cacert --cert --key --json --names" -- "$cur"))
      elif [ -z "$sub" ]; then
        COMPREPLY=($(compgen -W "list drain maint ready weight" -- "$cur"))
      elif [ "$prev" = "$sub" ] && [ "$sub" != list ]; then
        # BACKEND/SERVER names from the running wharf's admin API.
        COMPREPLY=($(compgen -W "$(wharf server "${args[@]}" list --names 2>/dev/null)" -- "$cur"))
      fi;;
    help) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "@TOPICS@" -- "$cur"));;
    completion) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "bash zsh" -- "$cur"));;
  esac
}
complete -F _wharf wharf
`

const zshCompletionTmpl = `#compdef wharf
# zsh completion for wharf. Load with: source <(wharf completion zsh)
# (after compinit), or save as _wharf in a directory on $fpath.
_wharf_frontends() {
  local cfg=/etc/wharf/wharf.toml i
  for ((i = 1; i < CURRENT; i++)); do
    [[ ${words[i]} == (-c|--c) ]] && cfg=${words[i+1]}
  done
  local -a names
  names=(${(f)"$(@FRONTENDS@ ${~cfg} 2>/dev/null)"})
  compadd -a names
}

_wharf_servers() {
  local -a args names
  local i
  for ((i = 1; i < CURRENT; i++)); do
    [[ ${words[i]} == (-c|--c|--admin|-admin|--cacert|-cacert|--cert|-cert|--key|-key) ]] && args+=(${words[i]} ${words[i+1]})
  done
  names=(${(f)"$(wharf server $args list --names 2>/dev/null)"})
  compadd -a names
}

_wharf() {
  local -a cmds
  cmds=(
    'run:run the gateway'
    'check:validate a config and print what it resolves to'
    'ports:list binds and port warnings'
    'tap:stream the messages passing a frontend or port'
    'server:list, drain, maint, ready or weight a proxy server at runtime'
    'help:help topics (@TOPICS@)'
    'completion:print a shell completion script'
    'version:print version and build information'
  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'wharf command' cmds
    return
  fi
  local sub=${words[2]}
  shift words
  (( CURRENT-- ))
  local cfg='-c[config file]:config file:_files -g "*.toml"'
  local -a admintls
  admintls=(
    '--admin[admin listener host:port]:address:'
    '--cacert[PEM CA file for the admin listener]:CA file:_files'
    '--cert[PEM client certificate]:certificate file:_files'
    '--key[PEM private key for --cert]:key file:_files'
  )
  case $sub in
    run|check) _arguments $cfg \
        '--config[config file]:config file:_files -g "*.toml"' \
        '--log-format[log format of wharf itself]:format:(text json)' ;;
    ports) _arguments $cfg '--audit[also audit the sockets listening on this host]' '--json[print JSON]' ;;
    tap) _arguments $cfg $admintls \
        '(--port)--frontend[frontend to tap]:frontend:_wharf_frontends' \
        '(--frontend)--port[local port to tap]:port:' \
        '--severity[severity selector]:severity:(emerg alert crit err warning notice info debug err..emerg)' \
        '--host[HOSTNAME glob]:glob:' \
        '--app[APP-NAME glob]:glob:' \
        '--raw[print the bytes as received]' ;;
    server) _arguments $cfg $admintls \
        '--json[list: print JSON]' \
        '--names[list: print BACKEND/SERVER per line]' \
        '1:command:(list drain maint ready weight)' \
        '2:backend/server:_wharf_servers' ;;
    help) (( CURRENT == 2 )) && compadd @TOPICS@ ;;
    completion) (( CURRENT == 2 )) && compadd bash zsh ;;
  esac
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
  _wharf "$@"
else
  compdef _wharf wharf
fi
`
