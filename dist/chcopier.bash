# bash completion for chcopier(1), installed as
# /usr/share/bash-completion/completions/chcopier. Self-contained (compgen
# only, no bash-completion helpers). dist/check-docs (meson test docs-sync)
# fails when the three lists below differ from `chcopier --help`.

_chcopier() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev= i
    local commands='run status plan clean upload help version'
    local flags_with_arg='--config --config-file --task-path --task-file --base-dir --log-level
        --pid-file --pidfile --umask --max-table-tries --max-shard-partition-tries
        --max-shard-partition-piece-tries-for-alter --retry-delay-ms --copy-fault-probability
        --move-fault-probability --log-format --max-pieces-in-flight --min-piece-rows
        --data-path --routing --max-bytes-per-second --metrics-port --fault-point --fault-seed'
    local flags_plain='--task-upload-force --daemon --safe-mode --status
        --experimental-use-sample-offset --log-stdout --json --yes --no-progress --help
        --version --allow-dead-replicas'

    i=$((COMP_CWORD - 1))
    # "--flag=value": bash splits at '=' (COMP_WORDBREAKS).
    if [[ $cur == = ]]; then
        cur=
        prev=${COMP_WORDS[i]}
    elif ((i > 0)) && [[ ${COMP_WORDS[i]} == = ]]; then
        prev=${COMP_WORDS[i - 1]}
    elif ((i >= 0)); then
        prev=${COMP_WORDS[i]}
    fi

    COMPREPLY=()
    case $prev in
    --config | --config-file | --task-file | --pid-file | --pidfile)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
        ;;
    --base-dir)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        return
        ;;
    --log-level)
        mapfile -t COMPREPLY < <(compgen -W 'error warning info debug trace' -- "$cur")
        return
        ;;
    --log-format)
        mapfile -t COMPREPLY < <(compgen -W 'text json' -- "$cur")
        return
        ;;
    --data-path)
        mapfile -t COMPREPLY < <(compgen -W 'pull pipe' -- "$cur")
        return
        ;;
    --routing)
        mapfile -t COMPREPLY < <(compgen -W 'auto distributed filter' -- "$cur")
        return
        ;;
    --task-upload-force | --experimental-use-sample-offset)
        if [[ $cur != -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W 'true false' -- "$cur")
            return
        fi
        ;;
    esac
    # Any other flag that takes a value: nothing sensible to offer.
    if [[ " ${flags_with_arg//$'\n'/ } " == *" $prev "* ]]; then
        return
    fi

    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$flags_with_arg $flags_plain" -- "$cur")
    elif ((COMP_CWORD == 1)); then
        mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
    fi
}
complete -F _chcopier chcopier
