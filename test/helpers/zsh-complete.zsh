# zsh -f zsh-complete.zsh <dir> <command line>...: prints the matches a real interactive zsh offers
# for each <command line> followed by a Tab, one line per compadd call, then a line "NJ-NEXT"; the
# completion functions of <dir> are on $fpath (autoloaded by compinit, as the .deb's
# /usr/share/zsh/vendor-completions are). One shell answers every line: compinit once, not once a
# line. The shell runs on a pseudo-terminal (zsh/zpty); compadd is wrapped to print what it adds.
zmodload zsh/zpty
zpty z zsh -f -i
# Reads what the shell prints up to a line ending in $1 (not the echo of what was typed: the
# markers are typed split by quotes), printing the matches on the way.
await() {
  local line
  while zpty -r z line; do
    line=${line//$'\r'/}
    [[ $line == *$1$'\n' ]] && return
    [[ $line == *HITS:* ]] && print -rn -- "${line##*HITS: }"
  done
  return 1
}
zpty -w z "PROMPT='>'; fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'compadd () { local -a __hits; builtin compadd -O __hits "$@"; (( $#__hits )) && print -r -- "H""ITS: ${(j: :)__hits}"; builtin compadd "$@" }'
# ^T completes as Tab does, then says so: keys typed while completion runs would cut it short.
zpty -w z '_nj_tab() { zle complete-word; print -r -- "T""ABBED" }; zle -N _nj_tab; bindkey "^T" _nj_tab; print R""EADY'
await READY || exit 1
for typed in "${@[2,-1]}"; do
  zpty -w -n z "$typed"$'\C-t'
  await TABBED || exit 1
  zpty -w z $'\C-u'"print -r -- E\"\"ND"
  await END || exit 1
  print -r -- $'\nNJ-NEXT'
done
zpty -d z
