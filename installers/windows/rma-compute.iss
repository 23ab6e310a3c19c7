; Inno Setup 6 script for the RMA Compute tray app: a per-user installer, no admin rights.
;
; Packages the PyInstaller one-folder build (dist\rma-compute\, see ..\..\build.spec).
; build.ps1 beside this file builds that folder and compiles this script; by hand:
;
;   ISCC.exe /DAppVersion=0.1.0 /DNumericVersion=0.1.0 ^
;            /DSourceDir=C:\src\rma\dist\rma-compute /DOutputDir=C:\src\rma\dist\installers ^
;            installers\windows\rma-compute.iss
;
; Every define is optional; the defaults below build from the repository's own dist\ folder.
; tests/installers/test_windows_installer_script.py checks this file against the app's
; start-at-login code (ISCC itself cannot run in this project's Linux CI).

#if VER < EncodeVer(6, 3, 0)
  #error Inno Setup 6.3 or newer is needed (for ArchitecturesAllowed=x64compatible).
#endif

#define RepoRoot AddBackslash(SourcePath) + "..\.."

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
; The file-version resource takes numbers only ("0.1.0", not "0.1.0rc1"); build.ps1 passes
; the leading numbers of AppVersion.
#ifndef NumericVersion
  #define NumericVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir RepoRoot + "\dist\rma-compute"
#endif
#ifndef OutputDir
  #define OutputDir RepoRoot + "\dist\installers"
#endif

#define AppName "RMA Compute"
#define AppExeName "rma-compute.exe"
; Never change the GUID: Windows and Inno find the earlier install (to upgrade or remove it)
; by it. Its uninstall key is HKCU\...\Uninstall\{GUID}_is1.
#define AppGuid "6C2F4E1A-93B7-4D0E-8A5C-2B7D9F14E3A6"

[Setup]
AppId={{{#AppGuid}}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=RMA
VersionInfoVersion={#NumericVersion}
; Per user, never elevated: the app, its Run value and its data all belong to the volunteer
; who installs it. No PrivilegesRequiredOverridesAllowed on purpose: an "install for all
; users" run elevates, possibly as another (admin) account, and would then write the Run value
; into that account's registry and run --quit against that account's app, not the volunteer's.
PrivilegesRequired=lowest
; Under PrivilegesRequired=lowest, {autopf} is the per-user Programs folder:
; %LOCALAPPDATA%\Programs\RMA Compute.
DefaultDirName={autopf}\{#AppName}
; One Start-menu shortcut, no folder of its own (Windows 10/11 guidance); no page to ask.
DisableProgramGroupPage=yes
; PyInstaller builds for the Python that runs it; the release workflow uses 64-bit Python.
; x64compatible also admits Windows 11 on Arm, which runs x64 programs.
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
SetupIconFile={#RepoRoot}\assets\icons\app.ico
UninstallDisplayIcon={app}\{#AppExeName}
UninstallDisplayName={#AppName}
OutputDir={#OutputDir}
OutputBaseFilename=rma-compute-{#AppVersion}-windows-setup
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
; Two copies of this installer at once would race over the same folder.
SetupMutex=RMAComputeSetup
; No AppMutex: the app does not create a named mutex (its single-instance guard is a lock
; file and a local socket). [Code] stops it with "rma-compute.exe --quit" instead, which also
; stops the pool's containers; a mutex check could only tell the volunteer to quit it by hand.
; CloseApplications stays on as the fallback for anything else holding a file in {app}
; (.pyd files included: PyInstaller's extension modules are loaded DLLs). RestartApplications
; is off: the "Launch RMA Compute" box on the last page starts the app again, and Restart
; Manager only restarts programs that registered for it, which the app does not.
CloseApplications=yes
CloseApplicationsFilter=*.exe,*.dll,*.pyd
RestartApplications=no
#ifdef SignToolName
; build.ps1 defines the sign tool (ISCC /S) when a certificate is configured; ISCC then signs
; Setup and the uninstaller it writes at install time.
SignTool={#SignToolName}
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
; Offered on a first install only. On an upgrade the app's own "Start at login" setting is the
; volunteer's latest word (it writes the same value), so the installer leaves it as it is.
Name: "autostart"; Description: "Start RMA Compute when I sign in"; Check: not IsUpgrade

[InstallDelete]
; An upgrade replaces the whole bundle: a module left behind by the previous version in
; _internal\ could be imported by the new one.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
; {autoprograms} is the volunteer's own Start-menu Programs folder under lowest privileges.
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExeName}"; Comment: "Contribute this computer's spare power to the RMA Compute pool"

[Registry]
; Exactly what the app writes itself (desktop_app/agent/autostart/windows_registry.py):
; value "RMA Compute Pool", data "<install dir>\rma-compute.exe" --autostart. No
; uninsdeletevalue flag: [Code] deletes the value at uninstall whether or not this task ran.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "RMA Compute Pool"; ValueData: """{app}\{#AppExeName}"" --autostart"; Tasks: autostart
; As the app does when it is switched on: forget an old "Disabled" from Task Manager's Startup
; tab, which would otherwise keep the new value from running.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"; ValueType: none; ValueName: "RMA Compute Pool"; Flags: deletevalue dontcreatekey; Tasks: autostart

[Run]
; Not on silent installs: an unattended install (or CI) must not leave the app running.
Filename: "{app}\{#AppExeName}"; Description: "Launch RMA Compute"; Flags: nowait postinstall skipifsilent

[Code]
const
  RunKey = 'Software\Microsoft\Windows\CurrentVersion\Run';
  StartupApprovedKey = 'Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run';
  RunValueName = 'RMA Compute Pool';
  QuitFlag = '--quit';
  { Where platformdirs puts the app's settings, state, logs and cache on Windows:
    %LOCALAPPDATA%\<APP_AUTHOR>\<APP_NAME> (desktop_app/agent/paths.py). }
  DataDirName = 'RMA\RMA Compute';

function UninstallKey: String;
begin
  Result := 'Software\Microsoft\Windows\CurrentVersion\Uninstall\{' + '{#AppGuid}' + '}_is1';
end;

{ True when this volunteer already has RMA Compute installed (per user, so under HKCU). }
function IsUpgrade: Boolean;
begin
  Result := RegValueExists(HKCU, UninstallKey, 'UninstallString');
end;

{ Runs "<AppDir>\rma-compute.exe --quit": it asks this volunteer's running app to stop the
  pool's containers and quit, waits for it (up to about 90 s), then removes any of the pool's
  containers still left. True when that worked or nothing is installed there; otherwise False
  with a sentence for the volunteer in Problem. }
function StopRunningApp(const AppDir: String; var Problem: String): Boolean;
var
  Exe: String;
  ResultCode: Integer;
begin
  Result := True;
  Problem := '';
  Exe := AddBackslash(AppDir) + '{#AppExeName}';
  if not FileExists(Exe) then
    Exit;
  Log('Stopping RMA Compute: ' + Exe + ' ' + QuitFlag);
  if not Exec(Exe, QuitFlag, '', SW_HIDE, ewWaitUntilTerminated, ResultCode) then
  begin
    Result := False;
    Problem := 'RMA Compute could not be started to stop itself (' +
      SysErrorMessage(ResultCode) + ').';
  end
  else if ResultCode <> 0 then
  begin
    Result := False;
    Problem := 'RMA Compute did not stop (exit code ' + IntToStr(ResultCode) + '). ' +
      'The pool''s containers may still be running.';
  end;
  Log('rma-compute.exe --quit finished; result: ' + IntToStr(ResultCode));
end;

{ Before files are replaced: the running app holds them open, and an upgrade must not leave
  the pool's containers running under an app that is being swapped out. Silent upgrades do not
  start the app again; it starts at the next sign-in (or from the Start menu). }
function PrepareToInstall(var NeedsRestart: Boolean): String;
var
  Problem: String;
  Stopped: Boolean;
  Progress: TOutputMarqueeProgressWizardPage;
begin
  Result := '';
  if not FileExists(ExpandConstant('{app}\{#AppExeName}')) then
    Exit;
  Progress := CreateOutputMarqueeProgressPage('Stopping RMA Compute',
    'RMA Compute is stopping the pool''s work on this computer. This can take a minute.');
  Progress.Show;
  try
    Progress.Animate;
    Stopped := StopRunningApp(ExpandConstant('{app}'), Problem);
  finally
    Progress.Hide;
  end;
  if Stopped then
    Exit;
  { Default (and the answer under /SUPPRESSMSGBOXES): stop here, change nothing. }
  if SuppressibleMsgBox(Problem + #13#10#13#10 +
       'Quit RMA Compute from its icon in the notification area first, then run Setup again. ' +
       'Install anyway?', mbError, MB_YESNO or MB_DEFBUTTON2, IDNO) <> IDYES then
    Result := Problem + ' Quit RMA Compute from its icon in the notification area, then run ' +
      'Setup again.';
end;

{ Forget the start-at-login entry: the app may have written it itself, so this runs whether or
  not the installer's task did. }
procedure RemoveStartAtLogin;
begin
  RegDeleteValue(HKCU, RunKey, RunValueName);
  RegDeleteValue(HKCU, StartupApprovedKey, RunValueName);
end;

{ Settings, the worker's identity, logs and cache are kept unless the volunteer says so: a
  reinstall then finds them again. Silent uninstalls always keep them. }
procedure OfferToDeleteData;
var
  DataDir: String;
begin
  DataDir := ExpandConstant('{localappdata}\') + DataDirName;
  if not DirExists(DataDir) then
    Exit;
  if SuppressibleMsgBox('Also delete your RMA Compute settings and logs?' + #13#10#13#10 +
       DataDir + #13#10#13#10 +
       'Keep them (No) if you may install RMA Compute again.',
       mbConfirmation, MB_YESNO or MB_DEFBUTTON2, IDNO) = IDYES then
  begin
    if not DelTree(DataDir, True, True, True) then
      SuppressibleMsgBox('Some files in ' + DataDir + ' could not be deleted. ' +
        'You can delete the folder yourself.', mbInformation, MB_OK, IDOK);
    { The publisher folder goes only when nothing else of ours is in it. }
    RemoveDir(ExtractFileDir(DataDir));
  end;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Problem: String;
begin
  { usAppMutexCheck: after the volunteer confirmed, before anything is removed, and Abort
    still leaves everything in place. }
  if CurUninstallStep = usAppMutexCheck then
  begin
    if not StopRunningApp(ExpandConstant('{app}'), Problem) then
    begin
      { Default (and the answer under /SUPPRESSMSGBOXES): keep everything. "Yes" is the way
        out for a damaged install whose rma-compute.exe no longer starts. }
      if SuppressibleMsgBox(Problem + #13#10#13#10 +
           'Quit RMA Compute from its icon in the notification area, then uninstall again. ' +
           'Uninstall anyway?', mbError, MB_YESNO or MB_DEFBUTTON2, IDNO) <> IDYES then
        Abort;
    end;
  end
  else if CurUninstallStep = usUninstall then
    RemoveStartAtLogin
  else if (CurUninstallStep = usPostUninstall) and not UninstallSilent then
    OfferToDeleteData;
end;
