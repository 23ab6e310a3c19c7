<#
.SYNOPSIS
Builds the Windows installer, dist\installers\rma-compute-<version>-windows-setup.exe.

.DESCRIPTION
1. PyInstaller freezes the tray app with build.spec into dist\rma-compute\ (not with -SkipFreeze).
2. With WINDOWS_SIGN_CERT (a .pfx file) and WINDOWS_SIGN_PASSWORD set, signtool signs
   dist\rma-compute\rma-compute.exe, and ISCC has Setup and its uninstaller signed too
   (timestamped by WINDOWS_TIMESTAMP_URL, default http://timestamp.digicert.com).
   Without them everything is unsigned, and SmartScreen warns whoever runs it.
3. ISCC (Inno Setup 6.3+) compiles rma-compute.iss beside this script.

RMA_BUILD_COORDINATOR_URL, when set, is read by build.spec and becomes the frozen app's
default pool address. PYTHON picks the interpreter (default: .venv\Scripts\python.exe when
there is one, else python on PATH); it needs `pip install -e ".[desktop,build]"`.

.EXAMPLE
pwsh installers/windows/build.ps1
#>
[CmdletBinding()]
param(
    # Package the dist\rma-compute\ folder that is already there instead of freezing again.
    [switch]$SkipFreeze,
    # Internal: ISCC's sign tool calls this script back with one file to sign, so that the
    # certificate's password stays out of ISCC's command line and its output.
    [string]$SignFile
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$DefaultTimestampUrl = 'http://timestamp.digicert.com'

function Invoke-Checked {
    # Runs a program and stops the build when it fails. The message names the program only:
    # its arguments may hold the signing password.
    param([Parameter(Mandatory)][string]$FilePath, [string[]]$ArgumentList = @())
    & $FilePath @ArgumentList
    if ($LASTEXITCODE -ne 0) {
        throw "$(Split-Path -Leaf $FilePath) failed with exit code $LASTEXITCODE."
    }
}

function Test-SigningConfigured {
    $cert = [bool]$env:WINDOWS_SIGN_CERT
    $password = [bool]$env:WINDOWS_SIGN_PASSWORD
    if ($cert -ne $password) {
        throw 'Set both WINDOWS_SIGN_CERT (path to a .pfx file) and WINDOWS_SIGN_PASSWORD to sign, or neither for an unsigned build.'
    }
    if ($cert -and -not (Test-Path -LiteralPath $env:WINDOWS_SIGN_CERT -PathType Leaf)) {
        throw "WINDOWS_SIGN_CERT names no file: $env:WINDOWS_SIGN_CERT"
    }
    return $cert
}

function Find-SignTool {
    $command = Get-Command signtool.exe -ErrorAction SilentlyContinue
    if ($command) { return $command.Source }
    # The Windows SDK keeps one folder per SDK version (bin\10.0.22621.0\x64\signtool.exe):
    # take the newest.
    $kits = Join-Path ${env:ProgramFiles(x86)} 'Windows Kits\10\bin'
    $found = Get-ChildItem -LiteralPath $kits -Filter signtool.exe -Recurse -ErrorAction SilentlyContinue |
        Where-Object { $_.Directory.Name -eq 'x64' } |
        Sort-Object -Descending -Property {
            $parsed = $null
            if ([version]::TryParse($_.Directory.Parent.Name, [ref]$parsed)) { $parsed } else { [version]'0.0' }
        } |
        Select-Object -First 1
    if ($found) { return $found.FullName }
    throw 'signtool.exe was not found on PATH or in the Windows 10/11 SDK; install the SDK''s signing tools or put signtool.exe on PATH.'
}

function Invoke-Sign {
    param([Parameter(Mandatory)][string]$Path)
    $timestampUrl = if ($env:WINDOWS_TIMESTAMP_URL) { $env:WINDOWS_TIMESTAMP_URL } else { $DefaultTimestampUrl }
    Write-Host "==> signing $Path (timestamp: $timestampUrl)"
    # SHA-256 file digest and RFC 3161 timestamp: what SmartScreen and current Windows expect;
    # the timestamp keeps the signature valid after the certificate expires.
    Invoke-Checked (Find-SignTool) @(
        'sign', '/f', $env:WINDOWS_SIGN_CERT, '/p', $env:WINDOWS_SIGN_PASSWORD,
        '/fd', 'SHA256', '/tr', $timestampUrl, '/td', 'SHA256', '/d', 'RMA Compute', $Path)
}

function Find-Iscc {
    $command = Get-Command ISCC.exe -ErrorAction SilentlyContinue
    if ($command) { return $command.Source }
    $candidates = @(
        (Join-Path ${env:ProgramFiles(x86)} 'Inno Setup 6\ISCC.exe'),
        (Join-Path $env:ProgramFiles 'Inno Setup 6\ISCC.exe'),
        # winget's per-user install of Inno Setup lands here.
        (Join-Path $env:LOCALAPPDATA 'Programs\Inno Setup 6\ISCC.exe')
    )
    foreach ($candidate in $candidates) {
        if (Test-Path -LiteralPath $candidate -PathType Leaf) { return $candidate }
    }
    throw 'ISCC.exe (Inno Setup 6) was not found on PATH or in its usual folders. Install it with "winget install JRSoftware.InnoSetup" or "choco install innosetup", or put ISCC.exe on PATH.'
}

function Resolve-Python {
    param([Parameter(Mandatory)][string]$RepoRoot)
    if ($env:PYTHON) { return $env:PYTHON }
    $venvPython = Join-Path $RepoRoot '.venv\Scripts\python.exe'
    if (Test-Path -LiteralPath $venvPython -PathType Leaf) { return $venvPython }
    return 'python'
}

if ($SignFile) {
    # Called back by ISCC (see the /S argument below) for Setup and for its uninstaller.
    Invoke-Sign -Path $SignFile
    exit 0
}

$repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '..\..')).Path
$signing = Test-SigningConfigured
$iscc = Find-Iscc
$python = Resolve-Python -RepoRoot $repoRoot
$sourceDir = Join-Path $repoRoot 'dist\rma-compute'
$outputDir = Join-Path $repoRoot 'dist\installers'
$frozenExe = Join-Path $sourceDir 'rma-compute.exe'

Push-Location $repoRoot
try {
    $version = (& $python -c 'import desktop_app; print(desktop_app.__version__)' | Out-String).Trim()
    if ($LASTEXITCODE -ne 0 -or -not $version) {
        throw "Could not read the app's version with $python; is the project installed (pip install -e "".[desktop,build]"")?"
    }
    # The file-version resource takes up to four numbers only ("0.1.0" from "0.1.0rc1").
    $numericVersion = if ($version -match '^\d+(\.\d+){0,3}') { $Matches[0] } else { '0.0.0' }
    Write-Host "==> RMA Compute $version for Windows"
    if ($env:RMA_BUILD_COORDINATOR_URL) {
        Write-Host "    pool address preset: $env:RMA_BUILD_COORDINATOR_URL"
    } else {
        Write-Host '    pool address preset: none (the app''s default)'
    }

    if ($SkipFreeze) {
        Write-Host "==> using the existing $sourceDir (-SkipFreeze)"
    } else {
        Write-Host "==> pyinstaller build.spec ($python)"
        Invoke-Checked $python @('-m', 'PyInstaller', '--noconfirm', 'build.spec')
    }
    if (-not (Test-Path -LiteralPath $frozenExe -PathType Leaf)) {
        throw "$frozenExe is missing; build.spec should have produced it."
    }

    $isccArguments = @(
        "/DAppVersion=$version",
        "/DNumericVersion=$numericVersion",
        "/DSourceDir=$sourceDir",
        "/DOutputDir=$outputDir"
    )
    if ($signing) {
        Invoke-Sign -Path $frozenExe
        # ISCC runs this command for Setup and for the uninstaller it embeds; $q is a quote
        # and $f the quoted file name. The password stays in the environment.
        $shell = (Get-Process -Id $PID).Path
        $isccArguments += "/Srmasign=`$q$shell`$q -NoProfile -ExecutionPolicy Bypass -File `$q$PSCommandPath`$q -SignFile `$f"
        $isccArguments += '/DSignToolName=rmasign'
    } else {
        Write-Host '==> UNSIGNED build: WINDOWS_SIGN_CERT and WINDOWS_SIGN_PASSWORD are not set.'
        Write-Host '    Windows SmartScreen will warn volunteers who run this installer.'
    }

    Write-Host "==> ISCC rma-compute.iss ($iscc)"
    Invoke-Checked $iscc ($isccArguments + @((Join-Path $PSScriptRoot 'rma-compute.iss')))
} finally {
    Pop-Location
}

$setup = Join-Path $outputDir "rma-compute-$version-windows-setup.exe"
if (-not (Test-Path -LiteralPath $setup -PathType Leaf)) {
    throw "ISCC finished but $setup is missing."
}
$state = if ($signing) { 'signed' } else { 'unsigned' }
Write-Host "==> built $setup ($state)"
